<?php
/**
 * SMS marketing opt-in at checkout and on the account page, apart from the email opt-in.
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * The SMS opt-in checkbox. Ticking it at checkout or on the account page records consent to
 * marketing text messages (yes, when, where) on the customer and the order; unticking it on the
 * account page withdraws it. Keepwell texts the billing phone only with this consent, and writes
 * a STOP texted back into the same meta.
 */
class Keepwell_Sms {

	const FIELD       = 'keepwell_sms_opt_in';
	const BLOCK_FIELD = 'keepwell/sms-opt-in';
	const OPT_IN      = '_keepwell_sms_opt_in';
	const OPT_IN_AT   = '_keepwell_sms_opt_in_at';
	const SOURCE      = '_keepwell_sms_opt_in_source';

	/**
	 * Hooks into the classic checkout, the block checkout and the My Account details form.
	 */
	public static function init() {
		add_action( 'woocommerce_review_order_before_submit', array( __CLASS__, 'checkout_field' ) );
		add_action( 'woocommerce_checkout_create_order', array( __CLASS__, 'save_on_order' ), 10, 2 );
		add_action( 'woocommerce_checkout_update_customer', array( __CLASS__, 'save_on_customer' ), 10, 2 );
		add_action( 'woocommerce_edit_account_form', array( __CLASS__, 'account_field' ) );
		add_action( 'woocommerce_save_account_details', array( __CLASS__, 'save_account' ) );
		add_action( 'woocommerce_set_additional_field_value', array( __CLASS__, 'copy_block_field' ), 10, 4 );
	}

	/**
	 * The checkbox's text (filterable: `keepwell_sms_opt_in_label`).
	 *
	 * @return string
	 */
	public static function label() {
		return (string) apply_filters( 'keepwell_sms_opt_in_label', __( 'Text me offers and news. Reply STOP to unsubscribe at any time.', 'keepwell' ) );
	}

	/**
	 * Registers the checkbox with the block checkout (WooCommerce 8.9 and later).
	 */
	public static function register_block_checkout_field() {
		if ( ! function_exists( 'woocommerce_register_additional_checkout_field' ) ) {
			return;
		}
		woocommerce_register_additional_checkout_field(
			array(
				'id'       => self::BLOCK_FIELD,
				'label'    => self::label(),
				'location' => 'order',
				'type'     => 'checkbox',
			)
		);
	}

	/**
	 * Stores the customer's SMS consent with when and where it was given or withdrawn.
	 *
	 * @param WC_Data $object  A WC_Customer or WC_Order.
	 * @param bool    $consent Whether the customer agrees to marketing text messages.
	 * @param string  $source  Where: checkout or account.
	 */
	public static function set_consent( $object, $consent, $source ) {
		$object->update_meta_data( self::OPT_IN, $consent ? 'yes' : 'no' );
		$object->update_meta_data( self::OPT_IN_AT, gmdate( 'c' ) );
		$object->update_meta_data( self::SOURCE, $source );
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
	 * Prints the checkbox.
	 *
	 * @param bool $checked Whether it starts ticked.
	 */
	private static function field( $checked ) {
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
	 * Prints the checkbox above the checkout's place-order button.
	 */
	public static function checkout_field() {
		$customer = WC()->customer;
		self::field( $customer && 'yes' === $customer->get_meta( self::OPT_IN ) );
	}

	/**
	 * Records a checkout opt-in on the order. Leaving the box unticked withdraws nothing.
	 *
	 * @param WC_Order $order The order being created.
	 * @param array    $data  The posted checkout data.
	 */
	public static function save_on_order( $order, $data ) {
		if ( self::ticked() ) {
			self::set_consent( $order, true, 'checkout' );
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
			self::set_consent( $customer, true, 'checkout' );
		}
	}

	/**
	 * Copies the block checkout's answer onto the order, and the customer's record.
	 *
	 * @param string  $key    The field id.
	 * @param mixed   $value  The answer.
	 * @param string  $group  The field group.
	 * @param WC_Data $object The order (or customer) being saved.
	 */
	public static function copy_block_field( $key, $value, $group, $object ) {
		if ( self::BLOCK_FIELD !== $key || ! $value || ! $object instanceof WC_Order ) {
			return;
		}
		self::set_consent( $object, true, 'checkout' );
		if ( $object->get_customer_id() ) {
			$customer = new WC_Customer( $object->get_customer_id() );
			self::set_consent( $customer, true, 'checkout' );
			$customer->save();
		}
	}

	/**
	 * Prints the checkbox on My Account > Account details.
	 */
	public static function account_field() {
		$customer = new WC_Customer( get_current_user_id() );
		self::field( 'yes' === $customer->get_meta( self::OPT_IN ) );
	}

	/**
	 * Saves the account page's answer: ticked is consent, unticked withdraws it.
	 *
	 * @param int $user_id The customer saving their details.
	 */
	public static function save_account( $user_id ) {
		$customer = new WC_Customer( $user_id );
		$now      = self::ticked();
		if ( ( 'yes' === $customer->get_meta( self::OPT_IN ) ) === $now && '' !== $customer->get_meta( self::OPT_IN ) ) {
			return; // Unchanged: keep the time and source of the original answer.
		}
		self::set_consent( $customer, $now, 'account' );
		$customer->save();
	}
}
