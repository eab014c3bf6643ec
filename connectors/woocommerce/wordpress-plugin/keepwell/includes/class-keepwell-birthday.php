<?php
/**
 * An optional birthday on the account page and at checkout.
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * Stores the birthday as customer meta (_keepwell_birthday, YYYY-MM-DD).
 */
class Keepwell_Birthday {

	const FIELD = 'keepwell_birthday';

	/**
	 * Hooks into My Account > Account details and the classic checkout.
	 */
	public static function init() {
		if ( 'no' === get_option( 'keepwell_ask_birthday', 'yes' ) ) {
			return;
		}
		add_action( 'woocommerce_edit_account_form', array( __CLASS__, 'account_field' ) );
		add_action( 'woocommerce_save_account_details', array( __CLASS__, 'save_account' ) );
		add_filter( 'woocommerce_checkout_fields', array( __CLASS__, 'checkout_field' ) );
		add_action( 'woocommerce_checkout_update_customer', array( __CLASS__, 'save_on_customer' ), 10, 2 );
	}

	/**
	 * The posted birthday, or '' when none or not a date.
	 *
	 * @return string
	 */
	private static function posted() {
		// phpcs:ignore WordPress.Security.NonceVerification.Missing -- WooCommerce verified the form's nonce before these hooks run.
		return isset( $_POST[ self::FIELD ] ) ? Keepwell_Meta::clean_date( wp_unslash( $_POST[ self::FIELD ] ) ) : '';
	}

	/**
	 * Prints the birthday field on the account page.
	 */
	public static function account_field() {
		$customer = new WC_Customer( get_current_user_id() );
		woocommerce_form_field(
			self::FIELD,
			array(
				'type'     => 'date',
				'label'    => esc_html__( 'Birthday (optional)', 'keepwell' ),
				'required' => false,
			),
			$customer->get_meta( Keepwell_Meta::BIRTHDAY )
		);
	}

	/**
	 * Saves the account page's birthday; an emptied field removes it.
	 *
	 * @param int $user_id The customer saving their details.
	 */
	public static function save_account( $user_id ) {
		$customer = new WC_Customer( $user_id );
		$customer->update_meta_data( Keepwell_Meta::BIRTHDAY, self::posted() );
		$customer->save();
	}

	/**
	 * Adds the birthday to the classic checkout's account fields.
	 *
	 * @param array $fields The checkout fields.
	 * @return array
	 */
	public static function checkout_field( $fields ) {
		$fields['order'][ self::FIELD ] = array(
			'type'     => 'date',
			'label'    => __( 'Your birthday (optional)', 'keepwell' ),
			'required' => false,
		);
		return $fields;
	}

	/**
	 * Saves a birthday given at checkout on the customer.
	 *
	 * @param WC_Customer $customer The customer being saved.
	 * @param array       $data     The posted checkout data.
	 */
	public static function save_on_customer( $customer, $data ) {
		$birthday = self::posted();
		if ( '' !== $birthday ) {
			$customer->update_meta_data( Keepwell_Meta::BIRTHDAY, $birthday );
		}
	}
}
