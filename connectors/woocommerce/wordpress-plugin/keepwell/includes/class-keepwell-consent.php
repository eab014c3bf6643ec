<?php
/**
 * Marketing opt-in at checkout and on the account page.
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * The opt-in checkbox. Ticking it at checkout or on the account page records consent (yes, when,
 * where) on the customer and the order; unticking it on the account page withdraws it.
 */
class Keepwell_Consent {

	const FIELD = 'keepwell_marketing_opt_in';

	/**
	 * Hooks into the classic checkout and the My Account details form.
	 */
	public static function init() {
		add_action( 'woocommerce_review_order_before_submit', array( __CLASS__, 'checkout_field' ) );
		add_action( 'woocommerce_checkout_create_order', array( __CLASS__, 'save_on_order' ), 10, 2 );
		add_action( 'woocommerce_checkout_update_customer', array( __CLASS__, 'save_on_customer' ), 10, 2 );
		add_action( 'woocommerce_edit_account_form', array( __CLASS__, 'account_field' ) );
		add_action( 'woocommerce_save_account_details', array( __CLASS__, 'save_account' ) );
	}

	/**
	 * The checkbox's text (filterable: `keepwell_opt_in_label`).
	 *
	 * @return string
	 */
	public static function label() {
		return (string) apply_filters( 'keepwell_opt_in_label', __( 'Email me offers and news. I can unsubscribe at any time.', 'keepwell' ) );
	}

	/**
	 * Whether the current checkout or account form ticked the box.
	 *
	 * @return bool
	 */
	private static function ticked() {
		// phpcs:ignore WordPress.Security.NonceVerification.Missing -- WooCommerce verified the form's nonce before these hooks run.
		return ! empty( $_POST[ self::FIELD ] );
	}

	/**
	 * Prints the checkbox above the checkout's place-order button.
	 */
	public static function checkout_field() {
		$customer = WC()->customer;
		$checked  = $customer && 'yes' === $customer->get_meta( Keepwell_Meta::OPT_IN );
		woocommerce_form_field(
			self::FIELD,
			array(
				'type'  => 'checkbox',
				'class' => array( 'form-row-wide' ),
				'label' => esc_html( self::label() ),
			),
			$checked ? 1 : 0
		);
	}

	/**
	 * Records a checkout opt-in on the order. Leaving the box unticked withdraws nothing.
	 *
	 * @param WC_Order $order The order being created.
	 * @param array    $data  The posted checkout data.
	 */
	public static function save_on_order( $order, $data ) {
		if ( self::ticked() ) {
			Keepwell_Meta::set_consent( $order, true, 'checkout' );
		}
	}

	/**
	 * Records a checkout opt-in on the customer.
	 *
	 * @param WC_Customer $customer The customer being saved.
	 * @param array       $data     The posted checkout data.
	 */
	public static function save_on_customer( $customer, $data ) {
		if ( self::ticked() ) {
			Keepwell_Meta::set_consent( $customer, true, 'checkout' );
		}
	}

	/**
	 * Records consent given in the block checkout on the customer too.
	 *
	 * @param int    $customer_id The order's customer (0 for a guest).
	 * @param string $source      Where the consent was given.
	 */
	public static function remember_for_customer( $customer_id, $source ) {
		if ( ! $customer_id ) {
			return;
		}
		$customer = new WC_Customer( $customer_id );
		Keepwell_Meta::set_consent( $customer, true, $source );
		$customer->save();
	}

	/**
	 * Prints the checkbox on My Account > Account details.
	 */
	public static function account_field() {
		$customer = new WC_Customer( get_current_user_id() );
		woocommerce_form_field(
			self::FIELD,
			array(
				'type'  => 'checkbox',
				'class' => array( 'form-row-wide' ),
				'label' => esc_html( self::label() ),
			),
			'yes' === $customer->get_meta( Keepwell_Meta::OPT_IN ) ? 1 : 0
		);
	}

	/**
	 * Saves the account page's answer: ticked is consent, unticked withdraws it.
	 *
	 * @param int $user_id The customer saving their details.
	 */
	public static function save_account( $user_id ) {
		$customer = new WC_Customer( $user_id );
		$now      = self::ticked();
		if ( ( 'yes' === $customer->get_meta( Keepwell_Meta::OPT_IN ) ) === $now && '' !== $customer->get_meta( Keepwell_Meta::OPT_IN ) ) {
			return; // Unchanged: keep the time and source of the original answer.
		}
		Keepwell_Meta::set_consent( $customer, $now, 'account' );
		$customer->save();
	}
}
